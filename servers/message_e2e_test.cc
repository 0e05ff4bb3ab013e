// message_e2e_test.cc — placeholder until the e2e tests land.
