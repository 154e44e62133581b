"""Interoperability tests: trimq against libzmq (through pyzmq) over real sockets."""
