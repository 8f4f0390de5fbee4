"""``python -m refbench …`` (also what ``torchrun -m refbench eval …`` runs)."""
from refbench.cli import main

if __name__ == "__main__":
    main()
