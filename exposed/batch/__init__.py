"""Many files the way shells expect: which inputs and outputs, one job per file, one reporter."""
