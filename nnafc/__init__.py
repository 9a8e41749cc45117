"""nnafc: Neural Network-based Automatic Factor Construction (Fang et al.), reproducible."""

__version__ = "0.1.0"
