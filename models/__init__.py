"""Learning components: XGBoost and LSTM models, the ensemble, calibration, intervals, SHAP, bundles.

Nothing in this package imports streamlit.
"""
