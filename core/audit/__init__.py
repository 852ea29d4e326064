"""The auditor's tools: history as of a moment, recorded decisions, tamper evidence, bundles.

* :mod:`.merkle` — RFC 9162 Merkle tree hashing, inclusion and consistency proofs;
* :mod:`.note` — C2SP signed notes and checkpoints (Ed25519);
* the rest builds on them (see ``docs/audit.md``).
"""
