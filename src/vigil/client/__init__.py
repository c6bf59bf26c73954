"""vigil.client"""
