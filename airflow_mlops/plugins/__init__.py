"""The provider's Airflow plugin: the storage root's reports, the MLOps model view and the addresses extra
links lead to, served by the api-server behind Airflow's authentication (``mlops`` registers
:class:`MlopsPlugin`, ``app`` builds the FastAPI app, ``reports`` resolves report paths safely, ``history``
and ``drift_chart`` read what the registry and the drift policy recorded, ``pages`` renders HTML)."""
