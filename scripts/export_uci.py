"""Export the ten UCI data sets as a ``tabular`` folder: one CSV file per data set (issue 14's
cross-check of ``compare tabular`` against ``compare uci``; docs/your-data.md).

    python scripts/export_uci.py --data-dir ../shared/data --out runs/uci-csv
    python scripts/export_uci.py --data-dir ../shared/data --out runs/uci-1hot --categorical-levels 10

The files hold the columns ``uci`` reads (``a1``, ``a2``, …; missing values empty) and a
``label`` column, with a ``tasks.yaml`` in UCI's task order (``softorder.data.uci_export``). As
exported (numbers stay numbers) the ``tabular`` tasks equal the ``uci`` tasks: the same rows,
splits, classes and standardised features (``tests/data/test_tabular.py``). With
``--categorical-levels K`` a column of at most K distinct integer codes is written as text, which
``tabular`` one-hot encodes where ``uci`` standardises the code as a number.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from softorder.data.uci_export import export_uci


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", help="the folder holding uci/ (default ~/.cache/softorder)")
    p.add_argument("--out", required=True, help="the tabular folder to write")
    p.add_argument("--categorical-levels", type=int, default=0,
                   help="integer columns of at most this many distinct values become categories (0: none)")
    args = p.parse_args()
    paths = export_uci(Path(args.out), args.data_dir, categorical_levels=args.categorical_levels)
    print(f"wrote {len(paths)} CSV files and tasks.yaml to {args.out}; next:")
    print(f"  softorder compare tabular --data-dir {args.out} --trials 10")


if __name__ == "__main__":
    main()
