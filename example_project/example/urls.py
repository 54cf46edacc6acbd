from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from members import views

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("verify/<str:token>/", views.verify, name="verify"),
    # Members log in to shop in the store as themselves (staff use the admin's login).
    path("login/", auth_views.LoginView.as_view(template_name="members/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("contacts/", views.contacts, name="contacts"),
    # Two tenants ("shops"), each connecting its own Omnisend brand from its page.
    path("shops/", views.shops, name="shops"),
    path("shops/<slug:slug>/", views.shop, name="shop"),
    # The site's own small shop: catalog, cart, checkout (see the store app).
    path("store/", include("store.urls")),
    path("admin/", admin.site.urls),
    # The "Connect Omnisend" flow; its callback is /omnisend/callback/.
    path("omnisend/", include("django_omnisend.urls")),
]
