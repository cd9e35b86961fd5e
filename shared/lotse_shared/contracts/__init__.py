"""Wire contracts: the envelope, one module per producer, and the catalogue.

``routing`` holds every routing key; ``partner`` what partners send to Lotse.
"""
