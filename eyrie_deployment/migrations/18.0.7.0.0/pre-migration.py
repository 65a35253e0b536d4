"""18.0.7.0.0, before the views load: the Odoo type's form extension of
18.0.6.0.0 shows the field ``admin_password``, which is gone (the login is
shown by *Show Login*, each viewing recorded). Emptied here, so that the
deployment form validates while the module's views are loaded again; its
new arch comes with them."""


def migrate(cr, version):
    if not version:
        return
    cr.execute(
        """
        UPDATE ir_ui_view
           SET arch_db = jsonb_build_object('en_US', '<data/>')
         WHERE id IN (
            SELECT res_id FROM ir_model_data
             WHERE module = 'eyrie_deployment'
               AND model = 'ir.ui.view'
               AND name = 'eyrie_deployment_view_form_odoo'
         )
        """
    )
