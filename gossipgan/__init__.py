"""gossipgan: decentralized optimistic training of GANs and min-max games."""
__version__ = "0.1.0"
