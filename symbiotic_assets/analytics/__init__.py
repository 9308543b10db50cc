"""Analytics: the dbt project in ``dbt_models/`` as Dagster assets, and a Python API over
the marts of the published snapshot. Importing this package is cheap: dagster-dbt and
the dbt manifest are only touched when the definitions are built."""
