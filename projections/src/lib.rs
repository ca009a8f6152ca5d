//! Pure folds over ledger events: block lifecycle, per-block credits, balances, worker statistics.
//! No I/O of its own.
