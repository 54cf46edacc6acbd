from django.urls import path

from . import views

app_name = "store"
urlpatterns = [
    path("", views.index, name="index"),
    path("products/<slug:slug>/", views.product, name="product"),
    path("products/<slug:slug>/add/", views.add_to_cart, name="add"),
    path("cart/", views.cart, name="cart"),
    path("checkout/start/", views.start_checkout, name="start_checkout"),
    path("checkout/", views.checkout, name="checkout"),
    path("checkout/place/", views.place_order, name="place_order"),
    path("orders/<int:pk>/", views.order_placed, name="order"),
    path("consent/", views.consent, name="consent"),
    path("activity/", views.activity, name="activity"),
]
