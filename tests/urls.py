from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("omnisend/", include("django_omnisend.urls")),
]
