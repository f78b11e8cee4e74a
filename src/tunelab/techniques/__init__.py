"""One module per technique; each has an explicit off state so it can be searched and ablated."""
