"""Under `chalice local`, a method a path lacks is 405 in the contract's format."""

import pytest
import requests

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "method, path, allowed",
    [("DELETE", "/messages/send", "POST"), ("POST", "/webhook", "DELETE, GET, PUT")],
)
def test_a_method_the_path_lacks_is_405_in_the_contract_format(stack, method, path, allowed):
    response = requests.request(method, stack.url + path, headers=stack.headers(), timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.json() == {
        "success": False,
        "errors": [],
        "message": f"Method {method} is not allowed here; use {allowed}",
    }
