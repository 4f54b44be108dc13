from django.urls import path

from hello import views

urlpatterns = [
    path("", views.index, name="index"),
    path("hello/<str:name>/", views.hello, name="hello"),
    path("api/info", views.info, name="info"),
]
