"""Forms of the MFA pages: the code asked at login, the code that confirms an enrolment."""

from django import forms
from django_otp.forms import OTPTokenForm

from security import mfa

CODE_WIDGET = forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "text",
                                     "size": 20, "spellcheck": "false"})


class MfaTokenForm(OTPTokenForm):
    """django-otp's token form with one field: a 6-digit code picks the app, anything else a recovery code."""

    otp_error_messages = dict(
        OTPTokenForm.otp_error_messages,
        token_required="Enter the 6-digit code from your authenticator app, or one of your recovery codes.",
        invalid_token="That code is not valid. Check your authenticator app's clock, or use a recovery code.",
        device_required="Enter the 6-digit code from your authenticator app, or one of your recovery codes.",
    )

    def __init__(self, user, request=None, *args, **kwargs):
        super().__init__(user, request, *args, **kwargs)
        self.fields["otp_device"].required = False
        self.fields["otp_device"].widget = forms.HiddenInput()
        self.fields["otp_token"].label = "Code"
        self.fields["otp_token"].max_length = 32
        self.fields["otp_token"].widget = CODE_WIDGET

    def clean_otp_token(self):
        return (self.cleaned_data.get("otp_token") or "").strip().replace(" ", "").lower()

    def _chosen_device(self, user):
        # Called by django-otp inside its transaction: the device row is locked while the code is checked.
        return mfa.device_for_token(user, self.cleaned_data.get("otp_token"), for_verify=True)


class EnrolConfirmForm(forms.Form):
    otp_token = forms.CharField(label="Code from the app", max_length=8, widget=CODE_WIDGET)

    def clean_otp_token(self):
        token = self.cleaned_data["otp_token"].strip().replace(" ", "")
        if not token.isdigit() or len(token) != 6:
            raise forms.ValidationError("Enter the 6 digits your authenticator app shows.")
        return token
