"""Pure tensor functions: colour conversion, filters, resizing, filter banks and pyramids."""
