"""What each page shows, gathered from the services: the portal's use cases.

One module per page. Every function takes the user's :class:`~lotse_portal.backend.UserApi`
and returns plain data for a template. A page makes a bounded number of calls whatever
the caseload's size (the services answer for a list of people at once). When one
service does not answer, the page still shows the other parts and names the missing
one (:class:`~lotse_portal.views.parts.Parts`).
"""
