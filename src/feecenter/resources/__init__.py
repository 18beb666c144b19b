"""Cloud resources (instances) and the projects they belong to (SET-7).

A resource has an ID, an optional name, product, region, project, tags, pay
mode, state (running / stopped / recycled) and, when prepaid, its service
period. Orders create and change resources through these services.
"""
