from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    """E-mail, name, password and the newsletter box (unticked by default: consent is opt-in)."""

    email = forms.EmailField(required=True)
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
        if commit:
            user.save()
        return user
