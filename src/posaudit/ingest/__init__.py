"""Bringing real data in: source files read through a mapping, checked against the data
contract, loaded into the store; what cannot be trusted kept in quarantine with its reason.

``mapping`` reads the mapping language, ``sources`` the files, ``convert`` turns strings into
contract values, ``contract`` checks them, ``secrets`` keeps PINs and card numbers out, and
``load`` does one ingest in one transaction under the store's writer lock. ``layout`` goes
the other way: a store written in the layout a built-in mapping reads (``export --layout``).
"""
