"""vigil.engine"""
