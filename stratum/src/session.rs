//! One connection's Stratum session as a state machine: subscribe, authorize, configure, submit.
