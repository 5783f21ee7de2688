"""Tables, figures and the report built from records."""
