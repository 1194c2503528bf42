"""netflow"""
