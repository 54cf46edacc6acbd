"""A user model with no ``email`` column: the address is ``contact_address``.

``email`` is a Python property over it (``User(email=...)``, ``user.email = ...`` work, as
they would with a site's own accessor), but ``User.objects.filter(email=...)`` raises
``FieldError``: code that queries the user table by e-mail fails here.
"""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    def create_user(self, username, email=None, password=None, **fields):
        user = self.model(username=username, contact_address=email or "", **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, username, email=None, password=None, **fields):
        return self.create_user(username, email, password, is_staff=True, **fields)


class User(AbstractBaseUser):
    username = models.CharField(max_length=150, unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    contact_address = models.CharField(max_length=320, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    USERNAME_FIELD = "username"
    objects = UserManager()

    @property
    def email(self) -> str:
        return self.contact_address

    @email.setter
    def email(self, value: str) -> None:
        self.contact_address = value or ""

    def has_perm(self, perm, obj=None):
        return self.is_staff

    def has_module_perms(self, app_label):
        return self.is_staff
