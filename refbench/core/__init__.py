"""refbench's core: the small typed contracts everything else is built on.

It imports nothing else of the project (checked in CI by import-linter, see ``.importlinter``):

    errors        RefbenchError and did-you-mean errors
    registry      one lazy registry style ("module:object" strings, entry points)
    protocols     named, versioned, hashed evaluation protocols
    binarize      model output -> boolean masks under a protocol's rule
    records       per-sample records (the whole metric state) and their JSON-lines files
    results       the results document (write, read, validate, upgrade) and run identity
    provenance    file digests, versions, git commit
    models        the RIS model interface (RISModel), ModelInfo and the model registry
    checkpoint    safe checkpoint reading and strict loading
    tokenize      sentence -> token ids (bert WordPiece, clip BPE; vocabularies vendored)
"""
__version__ = "0.1.0"
