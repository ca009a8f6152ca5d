//! Payout addresses: parsing for a chain's address prefixes, and the output script they pay to.
