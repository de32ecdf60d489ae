"""How every model StoreSight runs is obtained, converted, checked and licensed."""
