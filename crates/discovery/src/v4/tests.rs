//! Service tests over real UDP sockets on 127.0.0.0/8 (port 0).
