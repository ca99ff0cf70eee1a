"""``scratchopt demo ...``: the lesson's figures, rerun with scratchopt's own components."""
