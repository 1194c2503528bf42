"""sflow"""
