"""Reference implementations of RIS models (LAVT, MagNet, DMMI, MERES, JMCELN), one package each."""
