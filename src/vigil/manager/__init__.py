"""vigil.manager"""
