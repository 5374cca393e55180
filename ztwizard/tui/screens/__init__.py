"""One module per screen; modals live next to the feature that opens them."""
