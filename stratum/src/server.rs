//! The Stratum server: one task per connection, job distribution, share acknowledgement after the ledger append is durable.
