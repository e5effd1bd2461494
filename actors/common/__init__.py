"""Small pieces shared by several actors, defined once."""
