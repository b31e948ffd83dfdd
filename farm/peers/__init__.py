"""Stick-table replication between nodes: HAProxy's peers protocol.

- codec.py    the wire format (pure): encoded integers, the hello and status
              lines, message framing, table definitions, updates, acks
- session.py  one peer session as a state machine over bytes (pure: no
              sockets), handshake to heartbeat
- sync.py     between the wire and farm's shared tables: what changed since
              the last look (a snapshot diff, no cost to the workers), entry
              encoding, applying what a peer sent
- process.py  the peers process the master forks: listens, connects, runs
              the sessions and pushes changes
"""
