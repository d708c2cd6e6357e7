"""Helpers that make the engine behave as upstream IronFlow does, byte for byte.

Upstream is written in Rust; where Python's standard library differs in a
corner flows can reach (what ``trim`` strips, which number literals parse,
chrono's strftime dialect, how an I/O error reads), the Rust behaviour lives
here, once, and the nodes, conditions and stores import it.
"""
