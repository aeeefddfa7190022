"""The Streamlit dashboard: ``streamlit run dashboard/app.py`` (pages in ``dashboard/views``)."""
