"""Write plans.csv, the table of studies/csv_multiclass.py: 600 synthetic customers and the
plan each chose (basic, standard, premium). Run it from anywhere: python studies/data/make_plans.py"""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(11)
rows = 600
table = pd.DataFrame({
    "tenure_months": rng.integers(1, 73, rows),
    "monthly_gb": np.round(np.clip(rng.lognormal(2.0, 0.8, rows), 0.5, 100.0), 1),
    "devices": rng.integers(1, 6, rows),
    "calls_per_month": rng.poisson(30, rows),
    "region": rng.choice(["north", "south", "east", "west"], rows),
})
# Heavier data use, more devices and a longer tenure lead to a bigger plan; the south buys
# smaller ones; calls do not matter. The noise keeps neighbouring plans overlapping.
score = (np.log(table["monthly_gb"]) + 0.015 * table["tenure_months"] + 0.3 * table["devices"]
         + table["region"].map({"north": 0.0, "south": -0.4, "east": 0.2, "west": 0.1})
         + rng.logistic(0.0, 0.2, rows))
table["plan"] = pd.cut(score, np.quantile(score, [0, 0.4, 0.75, 1]), labels=["basic", "standard", "premium"],
                       include_lowest=True).astype(str)
table.to_csv(Path(__file__).with_name("plans.csv"), index=False)
