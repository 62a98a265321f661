"""GP mode: sRGB photos enhanced by a Gaussian process fitted on k-means centres, and its reference CNN."""
