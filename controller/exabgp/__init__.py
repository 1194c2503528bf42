"""exabgp"""
