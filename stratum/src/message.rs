//! Stratum V1 messages: requests, responses and notifications as plain data.
