"""Tables and figures' data for the book: each submodule studies one question of the paper."""
