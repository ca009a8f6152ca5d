//! The Stratum V1 server, jobs, share checks, vardiff and the node template client.
