"""Layer: worker. The IdP pull: upstream sources, their HTTP client, the pull and its
recorded runs."""
