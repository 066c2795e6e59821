"""Speed work applied on top of the plain reference model: precision, kernels, memory.

Everything here is chosen by what the device can do (a capability torch reports) or by a measurement,
never by the name of a CPU vendor, and changes only how fast a result is computed.
"""
