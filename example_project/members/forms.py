from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from .models import Shop


class SignupForm(UserCreationForm):
    """E-mail, name, password, the shop (optional) and the newsletter box (unticked by
    default: consent is opt-in)."""

    email = forms.EmailField(required=True)
    shop = forms.ModelChoiceField(
        Shop.objects.all(),
        required=False,
        empty_label="No shop (the site's own brand)",
        help_text="A shop's members sync to the Omnisend brand that shop connected.",
    )
    newsletter = forms.BooleanField(
        required=False, label="Yes, e-mail me news and offers (unsubscribe at any time)."
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["email", "first_name", "last_name"]

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        users = get_user_model().objects
        if users.filter(email__iexact=email).exists() or users.filter(username=email).exists():
            raise forms.ValidationError("An account with this e-mail address exists already.")
        return email

    def save(self, commit: bool = True):
        user = super().save(commit=False)
        user.username = self.cleaned_data["email"]
        # Read by ShopNewsletterAdapter when the save marks the user for sync (the membership
        # is only stored after the user).
        user.shop_at_signup = self.cleaned_data.get("shop")
        if commit:
            user.save()
        return user
