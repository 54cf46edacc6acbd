"""URLs of the "Connect Omnisend" flow; include them under any prefix::

    path("omnisend/", include("django_omnisend.urls"))

The callback's full URL (e.g. ``https://example.com/omnisend/callback/``) is what you register
with Omnisend and put into ``OMNISEND["REDIRECT_URI"]``.
"""

from django.urls import path

from .connect import views
from .connect.confirm import confirm

app_name = "django_omnisend"

urlpatterns = [
    path("connect/", views.connect, name="connect"),
    path("callback/", views.callback, name="callback"),
    path("confirm/<int:pk>/", confirm, name="confirm"),
    path("disconnect/", views.disconnect, name="disconnect"),
    # An owner's connection: ``owner`` is ``owners.sign_owner(instance)`` (the template tag
    # ``{% omnisend_connect owner %}`` builds these); a reconnect is a connect of its owner.
    path("connect/<str:owner>/", views.connect, name="connect"),
    path("reconnect/<str:owner>/", views.connect, name="reconnect"),
    path("disconnect/<str:owner>/", views.disconnect, name="disconnect"),
]
