"""vigil.events"""
