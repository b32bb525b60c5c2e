"""``icevault migrate``: a whole vault from another Glacier store (AWS, or another icevault)
into icevault, keeping every archive's ID, description, creation date and tree hash."""
